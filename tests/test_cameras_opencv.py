"""OpenCV-backed cameras on real files: a video through VideoCapture, an image-sequence replay."""
import cv2
import numpy as np
import pytest

from hardware.cameras.base import CameraError, CameraSettings
from hardware.cameras.opencv_camera import ImageSequenceCamera, OpenCVCamera


def frames(n, h=48, w=64):
    return [np.full((h, w), 20 * (i + 1), np.uint8) for i in range(n)]


def test_image_sequence_replays_in_name_order_with_pose_and_roi(tmp_path):
    for i, image in enumerate(frames(3)):
        cv2.imwrite(str(tmp_path / f"view_{i:02d}.png"), image)
    poses = iter([(1.0,), (2.0,), (3.0,), (4.0,)])
    camera = ImageSequenceCamera("coarse", tmp_path, pose_source=lambda: next(poses))
    camera.configure(exposure_us=1200, roi=(4, 2, 10, 8))
    got = [camera.snap() for _ in range(3)]
    assert [int(f.image[0, 0]) for f in got] == [20, 40, 60]
    assert [f.sequence for f in got] == [1, 2, 3]
    assert [f.pose for f in got] == [(1.0,), (2.0,), (3.0,)]
    assert got[0].image.shape == (8, 10) and got[0].exposure_us == 1200
    with pytest.raises(CameraError, match="exhausted after 3 frames"):
        camera.trigger()


def test_image_sequence_glob_and_missing(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), frames(1)[0])
    (tmp_path / "notes.txt").write_text("x")
    assert len(ImageSequenceCamera("c", str(tmp_path / "*")).paths) == 1
    with pytest.raises(CameraError, match="no images"):
        ImageSequenceCamera("c", tmp_path / "empty-*")


def test_grab_without_trigger_is_an_error(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), frames(1)[0])
    with pytest.raises(CameraError, match="without trigger"):
        ImageSequenceCamera("c", tmp_path).grab()


def test_video_file_through_videocapture(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for image in frames(4):
        writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    writer.release()
    with OpenCVCamera("usb", str(path)) as camera:
        images = [camera.snap().image for _ in range(4)]
    assert all(image.ndim == 2 for image in images)
    levels = [int(np.median(image)) for image in images]
    assert levels == pytest.approx([20, 40, 60, 80], abs=4)  # MJPG is lossy


def test_unopenable_source_names_camera():
    with pytest.raises(CameraError, match="'usb'.*cannot open"):
        OpenCVCamera("usb", "/nonexistent/video.avi").open()


def test_settings_validation():
    with pytest.raises(ValueError, match="exposure_us"):
        CameraSettings(exposure_us=0)
    with pytest.raises(ValueError, match="roi"):
        CameraSettings(roi=(0, 0, 0, 5))
