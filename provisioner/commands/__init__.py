"""The verbs, one module each; cli.py only turns the command line into their calls.

common     what several verbs share: the definition, the output directory, acting as its owner
provision  running the machine, from the start or from a record, with signals and callbacks
run        provisioning afresh, or adopting the recorded server
resume     continuing the recorded run
stop       stopping the recorded server
state      the state dump
graph      the machine as a diagram
check      validating a definition
"""
