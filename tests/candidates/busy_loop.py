# expect: timeout|cpu_limit
def activation_function(x):
    total = 0.0
    for i in range(10000):
        for j in range(10000):
            for k in range(10000):
                total = total + 1.0
    return x + total
