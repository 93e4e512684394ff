# expect: python_escape
def activation_function(x):
    # Python floats: the op counter sees none of the sines
    values = x.detach().flatten().tolist()
    out = torch.tensor([math.sin(v) for v in range(0)] + values, dtype=x.dtype)
    return x + 0 * out.reshape(x.shape)
