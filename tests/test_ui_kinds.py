"""The QA workspace's Defect kinds tab in real Qt (offscreen), on the QA tests' virtual-cell lot: a new
kind named, refused when malformed or repeated, audited, offered for relabelling and counted; teaching
refused without labels, then started as the panel's background job (the real teaching is tested in
test_teach_kind)."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("PyQt6")

from inspector.promotion import ModelPair  # noqa: E402
from tests.test_ui_qa import lot, open_item_with_calls, station  # noqa: E402,F401 - the fixtures and helper


def test_qa_names_a_kind_labels_with_it_and_starts_teaching(station, qtbot, monkeypatch):
    """Defect kinds tab: a new kind (checked, audited) shows up in the class choices and counts its
    labels; teaching is refused without labels and otherwise runs the few-shot job, whose candidate
    lands in the compare → gate → promote flow."""
    from ui import promotion_panel
    from ui.kinds_panel import NewKindDialog
    view, access, store, recipe = station
    kinds = view.kinds
    assert not kinds.new_button.isEnabled()  # not logged in
    view.set_session(access.login("anna", "2222"))
    dialog = NewKindDialog(known=view.review_model.queue.kinds.names())
    qtbot.addWidget(dialog)
    for name, text, problem in (("Pores", "x", "Name: name 'Pores' must be 2–32"), ("ok", "x", "reserved"),
                                ("porosity", "", "Description: say in one line")):
        dialog.name.setText(name)
        dialog.description.setText(text)
        assert problem in dialog.check()
    assert kinds.create_kind("porosity", "#aa3300", "clusters of small round pits") is not None
    assert kinds.create_kind("porosity", "#aa3300", "again") is None and "exists already" in kinds.status.text()
    names = [kinds.table.item(r, 0).text() for r in range(kinds.table.rowCount())]
    assert "porosity" in names
    item_classes = [view.review.class_choice.itemText(i) for i in range(view.review.class_choice.count())]
    assert "porosity" in item_classes and item_classes[-1] == "unknown"
    (row,) = access.audit(action="kind_create")
    assert (row.who, row.target) == ("anna", "kind:porosity")

    kinds.table.selectRow(names.index("porosity"))
    assert kinds.teach_button.isEnabled()
    kinds.teach_button.click()
    assert view.tabs.currentWidget() is view.promotion
    assert "no review label names 'porosity' yet" in view.promotion.refusal_label.text()
    item, index = open_item_with_calls(view)
    assert view.review_model.change_class(index, "porosity") is not None
    kinds.refresh()
    counts_row = [kinds.table.item(r, 0).text() for r in range(kinds.table.rowCount())].index("porosity")
    assert kinds.table.item(counts_row, 2).text() == "1"

    seen = []

    def stand_in(module, *args):  # the real teaching is tested in test_teach_kind; here the panel's wiring
        seen.append(args)
        out = Path(args[args.index("--out") + 1])
        code = (f"import shutil, pathlib; p = pathlib.Path({str(out)!r}); p.mkdir(parents=True); "
                f"shutil.copy({str(view.promotion.model.production().detector)!r}, p / 'detector.onnx'); "
                f"shutil.copy({str(view.promotion.model.production().classifier)!r}, p / 'classifier.onnx')")
        return [sys.executable, "-c", code]

    monkeypatch.setattr(promotion_panel, "python_module", stand_in)
    kinds.table.selectRow(counts_row)
    with qtbot.waitSignal(view.promotion.job.finished, timeout=30_000) as done:
        kinds.teach_button.click()
    assert done.args[0] is True
    (args,) = seen
    assert args[:3] == ("teach", "--kind", "porosity") and args[args.index("--review") + 1] == str(store.path)
    assert ModelPair.in_folder(view.promotion.candidate_edit.text()).missing() == []
