# expect: unbounded_loop
def activation_function(x):
    for i in range(10 ** 12):
        x = x + 0
    return x
