# rp2: run the shared board demo at boot (see boards/common/demo.py).
import demo

demo.main()
