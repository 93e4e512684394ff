# expect: torch_forbidden
def activation_function(x):
    torch.set_num_threads(64)
    return torch.relu(x)
