"""Stand-in for transformers' `tests/utils/test_configuration_utils.py`, which its source distribution does not ship.

`ConfigTester.check_config_arguments_init` builds a config from `config_common_kwargs`, the arguments every
`PreTrainedConfig` takes, each set to a value other than its default, and checks that each one is kept.
"""

config_common_kwargs = {
    "output_hidden_states": True,
    "return_dict": False,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
