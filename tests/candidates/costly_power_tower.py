# expect: costly_constant
# A top-level constant that never finishes computing: it would hang the process that loads the program
# (an exported pack or best_activation.py is loaded in the user's own process, with no time limit).
SCALE = 9 ** 9 ** 9 ** 9


def activation_function(x):
    return x * (SCALE % 2 + 0.5)
