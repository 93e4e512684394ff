# expect: torch_forbidden
def activation_function(x):
    torch.manual_seed(0)
    return x + torch.randn_like(x)
