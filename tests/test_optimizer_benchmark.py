"""benchmarks/optimizer.py: the three Adam implementations compute one update."""

import torch

from benchmarks import optimizer, report


def test_the_three_adam_steps_agree_and_are_reported():
    result = optimizer.run("tiny", rounds=1, device=torch.device("cpu"))
    assert set(result["step_median_s"]) == {"for-loop", "foreach", "fused"}
    assert result["speedup_over_for_loop"]["for-loop"] == 1.0
    assert result["steps_each"] == 2 and result["max_parameter_difference"] < 1e-6
    tiny = sum(p.numel() for p in optimizer._parameters(optimizer.SIZES["tiny"], "cpu"))
    assert result["parameters"] == tiny
    result["step_median_s"] = {"for-loop": 0.0128, "foreach": 0.0165, "fused": 0.0055}
    result["speedup_over_for_loop"] = {"for-loop": 1.0, "foreach": 0.777, "fused": 2.322}
    text = report.render({"optimizer": [result]})
    assert "| fused | 5.5 ms | 2.32x |" in text
    assert "| foreach | 16.5 ms | 0.78x |" in text
