# expect: inconsistent_function
def activation_function(x):
    # relu on every tensor the probes use (1-D points, a 2-D batch, the training shape), another
    # function on any other 3-D tensor (a sub-batch; the scoring pass where its batch differs).
    # Refused in training, where the lab recomputes a sub-batch of a step's real tensor.
    if x.dim() == 3 and x.shape[1] != 128:
        return torch.sin(x)
    return torch.relu(x)
