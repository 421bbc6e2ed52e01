from sweep.cli.tables import human


def test_human_numbers_round_before_choosing_the_unit():
    assert human(999.9e9) == "1T"
    assert human(1234567) == "1.23M"
    assert human(12384) == "12.4k"
    assert human(0.5) == "0.5"
    assert human(float("nan")) == "-"
