# expect: syntax_error
def activation_function(x)
    return x
