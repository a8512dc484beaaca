"""Where training runs: the device, mixed precision, the processes under torchrun, and the random
number generator states that --resume restores."""

import os

import torch

from melody.artefacts import UserError


def pick_device(name):
    if name == "auto":
        name = (
            "cuda"
            if torch.cuda.is_available()
            else "mps"
            if torch.backends.mps.is_available()
            else "cpu"
        )
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: this PyTorch sees no CUDA GPU; use --device auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: Apple MPS is not available here; use --device auto or cpu")
    return torch.device(name)


def start_processes(device):
    """(rank, processes, device): (0, 1, device) in a plain run; under torchrun (WORLD_SIZE > 1),
    joins the process group (nccl on CUDA, gloo on the CPU) and, on CUDA, takes the GPU of its
    LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if device.type == "mps":
        raise UserError("torchrun: Apple MPS has no distributed backend; use --device cpu")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, device


def shared_by_rank0(world, device, *values):
    """Rank 0's values (floats or bools), the same in every process: its validation figures and its
    clock decide for all, so that every process stops after the same epoch."""
    if world == 1:
        return values
    # float64 keeps the NLL exactly as rank 0 computed it
    shared = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    torch.distributed.broadcast(shared, 0)
    return [type(v)(x) for v, x in zip(values, shared.tolist())]


def mixed_precision(device):
    """(autocast dtype or None, whether a GradScaler is needed): bf16 where the GPU has it, else
    fp16.
    """
    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True  # fp16 gradients underflow without loss scaling


def rng_states(device):
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    if device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def restore_rng_states(states, device):
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
    if device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])
