# expect: torch_forbidden
# torch.Tensor(shape) is uninitialised memory: whatever the allocator held before (data of an earlier
# call), nondeterministic, and invisible to the probes.
def activation_function(x):
    noise = torch.Tensor(x.shape)
    return x + 0 * noise
