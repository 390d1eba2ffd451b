*** Settings ***
Documentation     The mcucompile device protocol (firmware/PROTOCOL.md) on a board that
...               Renode emulates: the same exchange as our QEMU tests, through Renode's
...               UART terminal tester. One suite for every board; renode-test gets the
...               board's script, UART and firmware as variables, e.g.
...
...               renode-test renode/mcucompile.robot
...               --variable RESC:${CURDIR}/stm32f746.resc --variable UART:sysbus.usart1
...               --variable ELF:OUT/build/board/model.elf
...               --variable INPUT_BYTES:1 --variable INPUT_HEX:db --variable OUTPUT_HEX:1f
...
...               (tests/test_renode.py runs it for the stm32f746 and nrf52840 boards).
...               INPUT_HEX is the model's whole input, at most 31 bytes (one `db` line).
Suite Setup       Setup
Suite Teardown    Teardown
Test Teardown     Test Teardown
Resource          ${RENODEKEYWORDS}

*** Variables ***
${RESC}           ${CURDIR}/stm32f746.resc
${UART}           sysbus.usart1
${ELF}            firmware.elf
${INPUT_BYTES}    1
${INPUT_HEX}      00
${OUTPUT_HEX}     ${EMPTY}

*** Keywords ***
Boot The Board
    Execute Command           $bin=@${ELF}
    Execute Command           include @${RESC}
    Create Terminal Tester    ${UART}    timeout=30
    Start Emulation
    Wait For Line On Uart     m-init-done
    Wait For Line On Uart     m-ready

Command Should Answer
    [Documentation]           Sends `command%` and waits for `line`, then for the reply's m-ready.
    [Arguments]               ${command}    ${line}
    Write Line To Uart        ${command}%    waitForEcho=false
    Wait For Line On Uart     ${line}
    Wait For Line On Uart     m-ready

*** Test Cases ***
Boots And Describes Itself
    Boot The Board
    Command Should Answer     name           m-name-dut-[mcucompile]
    Command Should Answer     profile        m-variant-[board]
    Command Should Answer     stack          m-stack-size-

Runs The Model And Returns Its Output Bytes
    Boot The Board
    Command Should Answer     db load ${INPUT_BYTES}    m-[Expecting ${INPUT_BYTES} bytes]
    Command Should Answer     db ${INPUT_HEX}           m-load-done
    Command Should Answer     infer 2 1                 m-infer-done
    Command Should Answer     results-raw               m-results-raw-0-[${OUTPUT_HEX}]
    Command Should Answer     cycles                    m-iterations-2

Answers Malformed Commands With Errors And Keeps Serving
    Boot The Board
    Command Should Answer     bogus          e-[Unknown command: bogus]
    Command Should Answer     db 0           e-[
    Command Should Answer     infer 1 0      e-[
    Command Should Answer     name           m-name-dut-[mcucompile]
