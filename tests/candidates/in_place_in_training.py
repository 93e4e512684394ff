# expect: modifies_input
def activation_function(x):
    # The probes' tensors are leaves; a layer's output in training is not: changed in place there only.
    if x.dim() == 3 and not x.is_leaf:
        x.mul_(1.5)
    return torch.relu(x)
