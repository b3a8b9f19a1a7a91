"""`inspector camera list` and `inspector camera snap --camera ID --out FILE.png`: for integrators
bringing up GigE Vision / USB3 Vision cameras (the `aravis` backend).

`list` prints one line per camera Aravis discovers: its id (what a station config's `source` may
hold, as may the serial or IP address), vendor, model, serial, address, protocol, and the exposure
and gain range its GenICam features report; exit 1 when none is found. `snap` opens one camera,
sets exposure/gain where given, takes one software-triggered frame and writes it (PNG; 16-bit for
Mono12/Mono16); exit 1 on a camera error, naming the cameras that were found."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    camera = sub.add_parser("camera", help="GigE Vision / USB3 Vision cameras (Aravis): list them, snap a frame",
                            description="Industrial cameras through GenICam (Aravis 0.8; the 'aravis' extra).")
    actions = camera.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", help="the cameras Aravis discovers, with their exposure and gain ranges")
    listing.add_argument("--no-limits", action="store_true", help="do not open each camera to read its ranges")
    listing.set_defaults(handler=_list)
    snap = actions.add_parser("snap", help="take one frame and write it as an image file")
    snap.add_argument("--camera", required=True, help="camera id (as listed), serial number or IP address")
    snap.add_argument("--out", required=True, help="image file to write (.png, .tif, .bmp)")
    snap.add_argument("--exposure-us", type=float, default=None, help="ExposureTime in µs")
    snap.add_argument("--gain", type=float, default=None, help="Gain in the camera's unit (dB or raw)")
    snap.add_argument("--pixel-format", default="Mono8", help="Mono8 (default), Mono12 or Mono16")
    snap.add_argument("--trigger", default="software", help="software (default), off (free run) or a line, e.g. Line0")
    snap.add_argument("--timeout-s", type=float, default=5.0, help="how long to wait for the frame (default 5)")
    snap.set_defaults(handler=_snap)
    camera.set_defaults(handler=lambda args: (camera.print_help(), 2)[1])


def _list(args: argparse.Namespace) -> int:
    from hardware.cameras.aravis_camera import AravisCamera, list_devices
    from hardware.cameras.base import CameraError

    devices = list_devices()
    if not devices:
        print("inspector camera list: no cameras found (GigE Vision: same subnet and no firewall on UDP 3956; "
              "USB3 Vision: udev permissions)", file=sys.stderr)
        return 1
    for info in devices:
        line = (f"{info.id}\tvendor={info.vendor}\tmodel={info.model}\tserial={info.serial}\t"
                f"address={info.address}\tprotocol={info.protocol}")
        if not args.no_limits:
            camera = AravisCamera("list", info.id)
            try:
                (exp_low, exp_high), (gain_low, gain_high) = camera.device_limits()
                line += f"\texposure_us={exp_low:g}..{exp_high:g}\tgain={gain_low:g}..{gain_high:g}"
            except CameraError as exc:
                line += f"\t(not opened: {exc})"
            finally:
                camera.close()
        print(line)
    return 0


def _snap(args: argparse.Namespace) -> int:
    import cv2

    from hardware.cameras.aravis_camera import AravisCamera

    camera = AravisCamera("snap", args.camera, pixel_format=args.pixel_format, trigger=args.trigger)
    try:
        camera.open()
        settings = camera.configure(exposure_us=args.exposure_us, gain=args.gain)
        frame = camera.snap(timeout_s=args.timeout_s)
    finally:
        camera.close()
    if not cv2.imwrite(args.out, frame.image):
        print(f"inspector camera snap: could not write {args.out!r} (use .png, .tif or .bmp)", file=sys.stderr)
        return 1
    height, width = frame.image.shape[:2]
    print(f"{args.out}: {width}×{height} {args.pixel_format} from {camera.info.id if camera.info else args.camera}, "
          f"exposure {settings.exposure_us:g} µs, gain {settings.gain:g}")
    return 0
