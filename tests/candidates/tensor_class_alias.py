# expect: torch_forbidden
# The class passed along under another name, then called.
def activation_function(x, make=torch.Tensor):
    return x + make(3).sum() * 0
