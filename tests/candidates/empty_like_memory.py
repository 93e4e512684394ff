# expect: torch_forbidden
def activation_function(x):
    scratch = torch.empty_like(x)
    return torch.where(scratch == scratch, x, -x)
