# expect: batch_dependent
def activation_function(x):
    return torch.relu(x - x.mean())
