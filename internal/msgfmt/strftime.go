package msgfmt

import (
	"strconv"
	"time"
)

// clock is the broken-down time of one message, computed once per Append
// and only when a format needs it.
type clock struct {
	ok                  bool
	year                int
	month               time.Month
	day, hour, min, sec int
	yday                int // 1..366
	wday                time.Weekday
	nsec                int
	unix                int64
	zone                string
	offset              int // seconds east of UTC
	isoYear, isoWeek    int
}

func (c *clock) set(t time.Time) {
	c.ok = true
	c.year, c.month, c.day = t.Date()
	c.hour, c.min, c.sec = t.Clock()
	c.yday = t.YearDay()
	c.wday = t.Weekday()
	c.nsec = t.Nanosecond()
	c.unix = t.Unix()
	c.zone, c.offset = t.Zone()
	c.isoYear, c.isoWeek = t.ISOWeek()
}

// timeVerbs are the strftime conversions glibc 2.36 knows, in the C locale
// (mosquitto_sub does not call setlocale), plus mosquitto's @N. @n, @t, @%
// and @@ are compiled to literals.
var timeVerbs = [128]bool{
	'a': true, 'A': true, 'b': true, 'B': true, 'c': true, 'C': true, 'd': true, 'D': true,
	'e': true, 'F': true, 'g': true, 'G': true, 'h': true, 'H': true, 'I': true, 'j': true,
	'k': true, 'l': true, 'm': true, 'M': true, 'N': true, 'p': true, 'P': true, 'r': true,
	'R': true, 's': true, 'S': true, 'T': true, 'u': true, 'U': true, 'V': true, 'w': true,
	'W': true, 'x': true, 'X': true, 'y': true, 'Y': true, 'z': true, 'Z': true,
}

var (
	dayShort   = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	dayLong    = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	monthShort = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	monthLong  = [12]string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"}
)

// appendStrftime appends glibc's strftime("%"+verb) in the C locale, or
// mosquitto's @N. Years are printed without padding, as glibc does
// (year 5 is "5"); years before 0 are not glibc-exact.
func appendStrftime(dst []byte, verb byte, c *clock) []byte {
	switch verb {
	case 'a':
		return append(dst, dayShort[c.wday]...)
	case 'A':
		return append(dst, dayLong[c.wday]...)
	case 'b', 'h':
		return append(dst, monthShort[c.month-1]...)
	case 'B':
		return append(dst, monthLong[c.month-1]...)
	case 'c': // %a %b %e %H:%M:%S %Y
		dst = append(dst, dayShort[c.wday]...)
		dst = append(dst, ' ')
		dst = append(dst, monthShort[c.month-1]...)
		dst = append(dst, ' ')
		dst = appendSpace2(dst, c.day)
		dst = append(dst, ' ')
		dst = appendHMS(dst, c)
		dst = append(dst, ' ')
		return strconv.AppendInt(dst, int64(c.year), 10)
	case 'C':
		return strconv.AppendInt(dst, int64(floorDiv(c.year, 100)), 10)
	case 'd':
		return append2(dst, c.day)
	case 'D', 'x': // %m/%d/%y
		dst = append2(dst, int(c.month))
		dst = append(dst, '/')
		dst = append2(dst, c.day)
		dst = append(dst, '/')
		return append2(dst, mod100(c.year))
	case 'e':
		return appendSpace2(dst, c.day)
	case 'F':
		return appendDate(dst, c)
	case 'g':
		return append2(dst, mod100(c.isoYear))
	case 'G':
		return strconv.AppendInt(dst, int64(c.isoYear), 10)
	case 'H':
		return append2(dst, c.hour)
	case 'I':
		return append2(dst, hour12(c.hour))
	case 'j':
		return appendZeroPad(dst, uint64(c.yday), 3)
	case 'k':
		return appendSpace2(dst, c.hour)
	case 'l':
		return appendSpace2(dst, hour12(c.hour))
	case 'm':
		return append2(dst, int(c.month))
	case 'M':
		return append2(dst, c.min)
	case 'N':
		return appendZeroPad(dst, uint64(c.nsec), 9)
	case 'p':
		if c.hour < 12 {
			return append(dst, "AM"...)
		}
		return append(dst, "PM"...)
	case 'P':
		if c.hour < 12 {
			return append(dst, "am"...)
		}
		return append(dst, "pm"...)
	case 'r': // %I:%M:%S %p
		dst = append2(dst, hour12(c.hour))
		dst = append(dst, ':')
		dst = append2(dst, c.min)
		dst = append(dst, ':')
		dst = append2(dst, c.sec)
		dst = append(dst, ' ')
		return appendStrftime(dst, 'p', c)
	case 'R': // %H:%M
		dst = append2(dst, c.hour)
		dst = append(dst, ':')
		return append2(dst, c.min)
	case 's':
		return strconv.AppendInt(dst, c.unix, 10)
	case 'S':
		return append2(dst, c.sec)
	case 'T', 'X': // %H:%M:%S
		return appendHMS(dst, c)
	case 'u':
		if c.wday == time.Sunday {
			return append(dst, '7')
		}
		return append(dst, '0'+byte(c.wday))
	case 'U': // week of the year, weeks starting on Sunday
		return append2(dst, (c.yday-1+7-int(c.wday))/7)
	case 'V':
		return append2(dst, c.isoWeek)
	case 'w':
		return append(dst, '0'+byte(c.wday))
	case 'W': // week of the year, weeks starting on Monday
		return append2(dst, (c.yday-1+7-(int(c.wday)+6)%7)/7)
	case 'y':
		return append2(dst, mod100(c.year))
	case 'Y':
		return strconv.AppendInt(dst, int64(c.year), 10)
	case 'z':
		return appendOffset(dst, c.offset)
	case 'Z':
		return append(dst, c.zone...)
	}
	return dst
}

// appendISO appends %I: strftime's %FT%T%z.
func appendISO(dst []byte, c *clock) []byte {
	dst = appendDate(dst, c)
	dst = append(dst, 'T')
	dst = appendHMS(dst, c)
	return appendOffset(dst, c.offset)
}

// appendDate appends %F: %Y-%m-%d.
func appendDate(dst []byte, c *clock) []byte {
	dst = strconv.AppendInt(dst, int64(c.year), 10)
	dst = append(dst, '-')
	dst = append2(dst, int(c.month))
	dst = append(dst, '-')
	return append2(dst, c.day)
}

// appendHMS appends %T: %H:%M:%S.
func appendHMS(dst []byte, c *clock) []byte {
	dst = append2(dst, c.hour)
	dst = append(dst, ':')
	dst = append2(dst, c.min)
	dst = append(dst, ':')
	return append2(dst, c.sec)
}

// appendOffset appends %z: +hhmm, seconds dropped (glibc: Dublin's 1880s
// offset of -00:25:21 is -0025).
func appendOffset(dst []byte, off int) []byte {
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	off /= 60
	dst = append(dst, sign)
	dst = append2(dst, off/60%100)
	return append2(dst, off%60)
}

// append2 appends v (0..99) as two digits.
func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10%10), byte('0'+v%10))
}

// appendSpace2 appends v (0..99) as two characters, space-padded.
func appendSpace2(dst []byte, v int) []byte {
	if v < 10 {
		return append(dst, ' ', byte('0'+v))
	}
	return append2(dst, v)
}

func hour12(h int) int { return (h+11)%12 + 1 }

func mod100(y int) int { return (y%100 + 100) % 100 }

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}
