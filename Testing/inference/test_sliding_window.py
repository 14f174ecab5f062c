import pytest
import torch

from ACELib.inference.sliding_window import Cancelled, gaussian_weight, sliding_window_logits, window_starts


@pytest.mark.parametrize("size, window, overlap", [(33, 16, 0.5), (17, 16, 0.25), (10, 16, 0.5), (64, 32, 0.0)])
def test_windows_cover_the_axis(size, window, overlap):
    starts = window_starts(size, window, overlap)
    covered = set()
    for s in starts:
        covered.update(range(s, min(s + window, size)))
    assert covered == set(range(size))
    assert starts[0] == 0 and min(starts[-1] + window, size) == size


@pytest.mark.parametrize("shape, window", [((2, 17, 23, 30), (8, 8, 8)), ((1, 9, 9, 9), (16, 16, 16)),
                                           ((3, 20, 12, 14), (12, 12, 12))])
def test_identity_network_returns_the_input(shape, window):
    image = torch.randn(shape)
    out = sliding_window_logits(lambda x: x * 1.0, image, shape[0], window, overlap=0.5, batch_size=3)
    torch.testing.assert_close(out, image, rtol=1e-5, atol=1e-5)


def test_gaussian_weight_peaks_in_the_centre():
    g = gaussian_weight((9, 9, 9))
    assert g.shape == (9, 9, 9) and g[4, 4, 4] == g.max() == 1.0 and g.min() >= 1e-4


def test_progress_and_cancel():
    calls = []
    sliding_window_logits(lambda x: x, torch.zeros(1, 16, 16, 16), 1, (8, 8, 8), 0.0,
                          progress=lambda d, t, m: calls.append((d, t)))
    assert calls[-1] == (8, 8)
    with pytest.raises(Cancelled):
        sliding_window_logits(lambda x: x, torch.zeros(1, 16, 16, 16), 1, (8, 8, 8), 0.0, cancel=lambda: True)


@pytest.mark.parametrize("kwargs, message", [({"overlap": 1.0}, r"overlap must be >= 0 and < 1, got 1.0"),
                                             ({"batch_size": 0}, "batch_size must be >= 1"),
                                             ({"window": (8, 8)}, "window must be three positive sizes")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sliding_window_logits(lambda x: x, torch.zeros(1, 8, 8, 8), 1, **{"window": (4, 4, 4), **kwargs})
