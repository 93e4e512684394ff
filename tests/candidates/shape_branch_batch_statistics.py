# expect: batch_dependent
def activation_function(x):
    # Pointwise on the probes' 1-D points and 2-D batch; batch statistics on training's 3-D tensors.
    if x.dim() == 3:
        return torch.relu(x - x.mean())
    return torch.relu(x)
