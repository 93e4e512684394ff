# expect: torch_forbidden
def activation_function(x):
    torch.utils.data.DataLoader([1])
    return x
