// Package reg is the MFRC522 register map, bit names and command codes as
// the NXP datasheet (MFRC522 Rev. 3.9, section 9) names them, plus the SPI
// address byte of section 8.1.2.3. Both the driver (package rc522) and the
// emulator (package rc522emu) use it, so a name means the same thing in both.
//
// # Datasheet
//
// https://www.nxp.com/docs/en/data-sheet/MFRC522.pdf
package reg

// Register addresses (datasheet table 20).
const (
	CommandReg    = 0x01
	ComIEnReg     = 0x02
	DivIEnReg     = 0x03
	ComIrqReg     = 0x04
	DivIrqReg     = 0x05
	ErrorReg      = 0x06
	Status1Reg    = 0x07
	Status2Reg    = 0x08
	FIFODataReg   = 0x09
	FIFOLevelReg  = 0x0A
	WaterLevelReg = 0x0B
	ControlReg    = 0x0C
	BitFramingReg = 0x0D
	CollReg       = 0x0E

	ModeReg        = 0x11
	TxModeReg      = 0x12
	RxModeReg      = 0x13
	TxControlReg   = 0x14
	TxASKReg       = 0x15
	TxSelReg       = 0x16
	RxSelReg       = 0x17
	RxThresholdReg = 0x18
	DemodReg       = 0x19
	MfTxReg        = 0x1C
	MfRxReg        = 0x1D
	SerialSpeedReg = 0x1F

	CRCResultRegH     = 0x21 // MSB
	CRCResultRegL     = 0x22 // LSB
	ModWidthReg       = 0x24
	RFCfgReg          = 0x26
	GsNReg            = 0x27
	CWGsPReg          = 0x28
	ModGsPReg         = 0x29
	TModeReg          = 0x2A
	TPrescalerReg     = 0x2B
	TReloadRegH       = 0x2C
	TReloadRegL       = 0x2D
	TCounterValueRegH = 0x2E
	TCounterValueRegL = 0x2F

	TestSel1Reg     = 0x31
	TestSel2Reg     = 0x32
	TestPinEnReg    = 0x33
	TestPinValueReg = 0x34
	TestBusReg      = 0x35
	AutoTestReg     = 0x36
	VersionReg      = 0x37
	AnalogTestReg   = 0x38
	TestDAC1Reg     = 0x39
	TestDAC2Reg     = 0x3A
	TestADCReg      = 0x3B
)

// Commands written to CommandReg bits 3..0 (datasheet table 149).
const (
	CmdIdle             = 0x00
	CmdMem              = 0x01
	CmdGenerateRandomID = 0x02
	CmdCalcCRC          = 0x03
	CmdTransmit         = 0x04
	CmdNoCmdChange      = 0x07
	CmdReceive          = 0x08
	CmdTransceive       = 0x0C
	CmdMFAuthent        = 0x0E
	CmdSoftReset        = 0x0F
)

// CommandReg bits.
const (
	RcvOff    = 0x20
	PowerDown = 0x10
)

// ComIEnReg, ComIrqReg bits.
const (
	IRqInv     = 0x80 // ComIEnReg: IRQ pin is the inverse of Status1Reg IRq
	Set1       = 0x80 // ComIrqReg: 1 sets, 0 clears the marked bits
	TxIRq      = 0x40
	RxIRq      = 0x20
	IdleIRq    = 0x10
	HiAlertIRq = 0x08
	LoAlertIRq = 0x04
	ErrIRq     = 0x02
	TimerIRq   = 0x01
)

// DivIEnReg, DivIrqReg bits.
const (
	IRQPushPull = 0x80 // DivIEnReg: IRQ pin is a CMOS output, not open drain
	Set2        = 0x80 // DivIrqReg: 1 sets, 0 clears the marked bits
	MfinActIRq  = 0x10
	CRCIRq      = 0x04
)

// ErrorReg bits.
const (
	WrErr       = 0x80
	TempErr     = 0x40
	BufferOvfl  = 0x10
	CollErr     = 0x08
	CRCErr      = 0x04
	ParityErr   = 0x02
	ProtocolErr = 0x01
)

// Status1Reg bits.
const (
	CRCOk    = 0x40
	CRCReady = 0x20
	IRq      = 0x10
	TRunning = 0x08
	HiAlert  = 0x02
	LoAlert  = 0x01
)

// Status2Reg bits and ModemState values.
const (
	TempSensClear = 0x80
	I2CForceHS    = 0x40
	MFCrypto1On   = 0x08
	ModemStateMsk = 0x07

	ModemIdle         = 0
	ModemWaitStart    = 1 // wait for the BitFramingReg StartSend bit
	ModemTxWait       = 2
	ModemTransmitting = 3
	ModemRxWait       = 4
	ModemWaitData     = 5
	ModemReceiving    = 6
)

// FIFOLevelReg, ControlReg, BitFramingReg, CollReg bits.
const (
	FlushBuffer     = 0x80
	TStopNow        = 0x80
	TStartNow       = 0x40
	RxLastBitsMsk   = 0x07
	StartSend       = 0x80
	RxAlignShift    = 4
	TxLastBitsMsk   = 0x07
	ValuesAfterColl = 0x80
	CollPosNotValid = 0x20
	CollPosMsk      = 0x1F
)

// ModeReg, TxModeReg, RxModeReg, TxControlReg, TxASKReg, TModeReg bits.
const (
	MSBFirst      = 0x80
	CRCPresetMsk  = 0x03
	TxCRCEn       = 0x80
	RxCRCEn       = 0x80
	RxNoErr       = 0x08
	RxMultiple    = 0x04
	Tx2RFEn       = 0x02
	Tx1RFEn       = 0x01
	Force100ASK   = 0x40
	TAuto         = 0x80
	TAutoRestart  = 0x10
	TPrescalerHi  = 0x0F
	TPrescalEven  = 0x10 // DemodReg
	RxGainShift   = 4
	RxGainMsk     = 0x70
	SpeedMsk      = 0x70 // TxModeReg, RxModeReg: 000 = 106 kBd
	VersionV1     = 0x91
	VersionV2     = 0x92
	ReadFlag      = 0x80 // SPI address byte: 1 = read
	addrShift     = 1
	addressMsk    = 0x7E
	MaxFIFOLength = 64
)

// Addr returns the SPI address byte for a write to register r: bit 7 is 0
// for a write, bits 6..1 the address, bit 0 always 0 (datasheet 8.1.2.3).
func Addr(r byte) byte { return r << addrShift & addressMsk }

// ReadAddr returns the SPI address byte for a read of register r.
func ReadAddr(r byte) byte { return ReadFlag | Addr(r) }

// FromAddr returns the register an SPI address byte names and whether it
// asks for a read.
func FromAddr(b byte) (r byte, read bool) { return b & addressMsk >> addrShift, b&ReadFlag != 0 }

// Names maps register addresses to their datasheet names, for logs and
// recorded fixtures.
var Names = map[byte]string{
	CommandReg: "CommandReg", ComIEnReg: "ComIEnReg", DivIEnReg: "DivIEnReg",
	ComIrqReg: "ComIrqReg", DivIrqReg: "DivIrqReg", ErrorReg: "ErrorReg",
	Status1Reg: "Status1Reg", Status2Reg: "Status2Reg", FIFODataReg: "FIFODataReg",
	FIFOLevelReg: "FIFOLevelReg", WaterLevelReg: "WaterLevelReg", ControlReg: "ControlReg",
	BitFramingReg: "BitFramingReg", CollReg: "CollReg", ModeReg: "ModeReg",
	TxModeReg: "TxModeReg", RxModeReg: "RxModeReg", TxControlReg: "TxControlReg",
	TxASKReg: "TxASKReg", TxSelReg: "TxSelReg", RxSelReg: "RxSelReg",
	RxThresholdReg: "RxThresholdReg", DemodReg: "DemodReg", MfTxReg: "MfTxReg",
	MfRxReg: "MfRxReg", SerialSpeedReg: "SerialSpeedReg", CRCResultRegH: "CRCResultRegH",
	CRCResultRegL: "CRCResultRegL", ModWidthReg: "ModWidthReg", RFCfgReg: "RFCfgReg",
	GsNReg: "GsNReg", CWGsPReg: "CWGsPReg", ModGsPReg: "ModGsPReg", TModeReg: "TModeReg",
	TPrescalerReg: "TPrescalerReg", TReloadRegH: "TReloadRegH", TReloadRegL: "TReloadRegL",
	TCounterValueRegH: "TCounterValueRegH", TCounterValueRegL: "TCounterValueRegL",
	TestSel1Reg: "TestSel1Reg", TestSel2Reg: "TestSel2Reg", TestPinEnReg: "TestPinEnReg",
	TestPinValueReg: "TestPinValueReg", TestBusReg: "TestBusReg", AutoTestReg: "AutoTestReg",
	VersionReg: "VersionReg", AnalogTestReg: "AnalogTestReg", TestDAC1Reg: "TestDAC1Reg",
	TestDAC2Reg: "TestDAC2Reg", TestADCReg: "TestADCReg",
}
