# expect: missing_function
def act(x):
    return torch.relu(x)
