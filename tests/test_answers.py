from negtune.utils.answers import format_number, last_boxed, strip_math_delimiters


def test_last_boxed_nested_and_last():
    assert last_boxed(r"first \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed(r"\fbox{7}") == "7"
    assert last_boxed(r"so \boxed 5.") == "5"


def test_last_boxed_missing_or_unclosed():
    assert last_boxed("no box here") is None
    assert last_boxed(r"\boxed{12") is None
    assert last_boxed("") is None
    assert last_boxed(None) is None


def test_helpers():
    assert strip_math_delimiters("$2n$") == "2n"
    assert strip_math_delimiters(r"\(x\)") == "x"
    assert format_number(27.0) == "27" and format_number(0.5) == "0.5" and format_number(3) == "3"
