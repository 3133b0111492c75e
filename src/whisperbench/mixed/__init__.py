"""Mixed-precision 4-bit recipes chosen by measured sensitivity.

`groups`: a Whisper model's tensor groups (each layer's attention and MLP, the tied embedding / output
projection, the convolutions, the positions) and their parameter counts. `schemes`: each backend's 4-bit
scheme as a quantize-dequantize of a weight (what its recipe stores, read back in fp32). `sensitivity`: the
pass that quantizes one group at a time on the calibration pool and ranks the damage. `budget`: bits per
weight of an assignment, and the solver that promotes groups to 8 bits under a budget.
"""
