# expect: python_escape
def activation_function(x):
    text = f"{x.detach()}"
    return x + 0 * len(text)
