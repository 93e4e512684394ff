# expect: inconsistent_function
def activation_function(x):
    # One function while gradients are tracked (training), another when they are not (scoring).
    if x.requires_grad:
        return torch.relu(x)
    return torch.tanh(x)
