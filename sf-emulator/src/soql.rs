//! SOQL: parsing and evaluation of the subset the emulator serves.
