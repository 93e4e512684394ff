# expect: undefined_name
def activation_function(x, hook=nn.functional.torch.os.popen):
    return F.gelu(x)
