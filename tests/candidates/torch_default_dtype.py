# expect: torch_forbidden
def activation_function(x):
    torch.set_default_dtype(torch.float64)
    return x
