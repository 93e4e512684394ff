# expect: dunder
def activation_function(x):
    os = __import__('os')
    return x
