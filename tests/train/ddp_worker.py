"""Run under torchrun: each rank fine-tunes the same tiny model and writes its final weights."""

import os
import sys
from pathlib import Path

import safetensors.torch
import torch
from conftest import tiny_model
from torch.utils.data import default_collate
from train.test_finetune import toy_dataset

from prunekit.train import TrainConfig, finetune

out = Path(sys.argv[1])
rank = int(os.environ["RANK"])
model = tiny_model("bert")
if rank == 0:
    safetensors.torch.save_model(model, str(out / "initial.safetensors"))
finetune(
    model, toy_dataset(), default_collate, TrainConfig(learning_rate=1e-3, epochs=2, batch_size=4)
)
assert torch.distributed.get_world_size() == 2, "accelerate did not form a 2-process group"
weights = {k: v.contiguous() for k, v in model.state_dict().items()}
safetensors.torch.save_file(weights, str(out / f"rank{rank}.safetensors"))
torch.distributed.barrier()
