# expect: modifies_input
def activation_function(x):
    x[x.abs() > 100] = 0.0
    return torch.tanh(x)
