# expect: memory_limit
def activation_function(x):
    big = torch.ones(1 << 31, 8)
    return x + big.sum()
