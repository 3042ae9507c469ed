"""Stand-in for transformers' `tests/generation/test_utils.py`, which its source distribution does not ship.

`test_modeling_common` only names `GenerationTesterMixin` in an inheritance check; this library's generation tests
are its own (tests/models/test_transformers_contract.py, tests/properties/ and the family tests), so the stand-in
is an empty class and that check is deselected in tests/hf/test_transformers_common.py.
"""


class GenerationTesterMixin:
    pass
