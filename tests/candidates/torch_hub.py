# expect: torch_forbidden
def activation_function(x):
    m = torch.hub.load('pytorch/vision', 'resnet18')
    return x
