"""The one scaled-image label of the station (operator view, live view): mono and BGR frames, the
aspect ratio kept as it is resized, boxes drawn in the frame's pixels, the text back on clear."""
import numpy as np
import pytest

pytest.importorskip("PyQt6")

from ui.image_label import ScaledImageLabel, to_pixmap  # noqa: E402


def test_to_pixmap_mono_and_bgr(qapp):
    mono = np.zeros((30, 40), np.uint8)
    mono[10, 20] = 200
    image = to_pixmap(mono).toImage()
    assert (image.width(), image.height()) == (40, 30) and image.pixelColor(20, 10).red() == 200
    bgr = np.zeros((30, 40, 3), np.uint8)
    bgr[5, 6] = (255, 0, 0)  # blue in BGR
    colour = to_pixmap(bgr).toImage().pixelColor(6, 5)
    assert (colour.red(), colour.green(), colour.blue()) == (0, 0, 255)
    assert to_pixmap(np.zeros((30, 40), np.uint8)[:, ::2]).width() == 20  # a strided view is copied


def test_label_keeps_aspect_ratio_on_resize_draws_boxes_and_clears(qtbot):
    label = ScaledImageLabel("no frame")
    qtbot.addWidget(label)
    label.resize(400, 400)
    label.show()
    label.show_image(np.zeros((300, 600), np.uint8), [(100, 100, 200, 150)], colours=["#ff0000"])
    assert (label.pixmap().width(), label.pixmap().height()) == (400, 200)
    assert label.source.width() == 600 and label.source.toImage().pixelColor(100 - 6, 120).red() == 255
    label.resize(800, 800)
    qtbot.waitUntil(lambda: label.pixmap().width() == 800)
    assert label.pixmap().height() == 400
    label.clear_image("camera lost")
    assert label.source is None and label.text() == "camera lost" and label.pixmap().isNull()


def test_operator_and_live_view_share_the_label(qtbot):
    from ui import live_view, operator_view
    from ui.live_view import LiveView
    from ui.operator_view import OperatorView

    assert not hasattr(live_view, "FrameLabel") and not hasattr(operator_view, "ImagePanel")
    live, view = LiveView(), OperatorView()
    qtbot.addWidget(live)
    qtbot.addWidget(view)
    assert isinstance(live.image, ScaledImageLabel)
    assert isinstance(view.coarse, ScaledImageLabel) and isinstance(view.fine, ScaledImageLabel)
