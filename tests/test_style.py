"""The book's shared wording and provenance helpers."""

from sparsing_lib import paths, style


def test_word_list_joins_like_the_prose():
    assert style.word_list([]) == ""
    assert style.word_list(["BoolQ"]) == "BoolQ"
    assert style.word_list(["GSM8K", "MBPP"]) == "GSM8K and MBPP"
    assert style.word_list(iter(["a", "b", "c"])) == "a, b and c"


def test_device_hardware_names_the_host_on_cpu():
    assert paths.device_hardware("cpu") == paths.cpu_hardware()
    assert "CPU cores" in paths.device_hardware()
