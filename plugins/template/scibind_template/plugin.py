"""Hook implementations of the ``template`` plugin."""
