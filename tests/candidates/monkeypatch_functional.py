# expect: attribute_assignment
def activation_function(x):
    F.relu = torch.tanh
    return F.gelu(x)
