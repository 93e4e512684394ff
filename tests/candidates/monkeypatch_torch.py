# expect: attribute_assignment
torch.sin = torch.cos

def activation_function(x):
    return torch.sin(x)
