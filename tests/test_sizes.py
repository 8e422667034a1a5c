import pytest

from framecolor.sizes import readable_size


@pytest.mark.parametrize("n_bytes, said", [
    (0, "0 B"), (999, "999 B"),  # bytes as they are
    (1000, "1.0 kB"), (97_449, "97.4 kB"),  # decimal units, as file managers show them: not 95.2 KiB
    (999_949, "999.9 kB"), (999_950, "1.0 MB"),  # rounding up crosses into the next unit, never "1000.0 kB"
    (6_356_221, "6.4 MB"), (1_234_567_890, "1.2 GB"),
])
def test_sizes_read_in_decimal_units_with_one_decimal(n_bytes, said):
    assert readable_size(n_bytes) == said
