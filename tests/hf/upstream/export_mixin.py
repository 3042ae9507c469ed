"""Stand-in for transformers' `tests/exporters/test_export.py`, which its source distribution does not ship.

`ModelTesterMixin` derives from `ExportTesterMixin`; the torch.export tests it would add are not part of this
library's contract (no family claims export support), so the stand-in adds none.
"""


class ExportTesterMixin:
    pass
