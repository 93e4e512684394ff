# expect: mutable_state
def activation_function(x, counter=torch.zeros(1)):
    counter.add_(1)
    return torch.where(counter > 40, x - x.mean(), x)
