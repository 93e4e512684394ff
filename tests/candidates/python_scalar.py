# expect: bad_output
def activation_function(x):
    return 1.0
