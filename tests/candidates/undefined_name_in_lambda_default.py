# expect: undefined_name
def activation_function(x):
    try:
        run = lambda z, call=nn.functional.torch.os.system: z
    except Exception:
        run = lambda z: z
    return run(torch.tanh(x))
