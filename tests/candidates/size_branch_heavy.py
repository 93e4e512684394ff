# expect: over_flop_budget
def activation_function(x):
    # Cheap on small probe tensors; 60 transcendental ops per element on training-sized ones.
    y = torch.relu(x)
    if x.numel() > 5000:
        for k in range(60):
            y = y + 1e-9 * torch.sin(x + k)
    return y
