# expect: modifies_input
def activation_function(x):
    # Changes the previous layer's output in place: training would see wrong values and gradients.
    x.clamp_(-5.0, 5.0)
    return torch.relu(x)
