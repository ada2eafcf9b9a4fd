"""Run by torchrun in tests: each rank builds its share of a teacher cache (gloo).

argv: cache folder, teacher folder, report folder. Each rank writes how many
texts its teacher encoded to ``<report>/rank<k>.txt``.
"""

import os
import sys

import torch.distributed as dist

from sense.lobes.text import TeacherSpec
from sense.teacher_cache import build_distributed

N_ITEMS = 40


def items() -> dict[str, str]:
    return {f"u{i:03d}": f"sentence number {i} " + "la " * (i % 7) for i in range(N_ITEMS)}


def main(folder: str, teacher: str, report: str) -> None:
    dist.init_process_group("gloo")
    encoder = TeacherSpec(teacher, kind="hf", pooling="cls").load("cpu")
    counted = {"n": 0}
    encode = encoder.encode

    def counting_encode(texts, batch_size=None, progress=False):
        counted["n"] += len(texts)
        return encode(texts, batch_size=batch_size, progress=progress)

    encoder.encode = counting_encode
    cache = build_distributed(
        folder, items(), lambda: encoder, batch_size=4, chunk_size=8, progress=False
    )
    assert len(cache) == N_ITEMS
    os.makedirs(report, exist_ok=True)
    with open(os.path.join(report, f"rank{dist.get_rank()}.txt"), "w") as f:
        f.write(str(counted["n"]))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
