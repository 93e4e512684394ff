# expect: over_flop_budget
def activation_function(x):
    y = x
    for k in range(40):
        y = y + 0.01 * torch.sin(y)
    return y
