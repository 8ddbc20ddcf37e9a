# Edit before copying to the board (make deploy does). Never commit a real passphrase.
WIFI_SSID = "factory-net"
WIFI_KEY = "change-me"
# Your vendor zone (https://www.ntppool.org/vendors.html), never the plain pool.ntp.org name
# as a product default (client-rules.md rules 3 and 13).
NTP_SERVER = "0.acme.pool.ntp.org"
