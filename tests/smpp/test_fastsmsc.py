"""The benchmarks' fast SMSC through SMPP, with ``smpplib`` as the ESME: every submit_sm
gets an answer with a message id, a receipt for that id comes back when one is asked for,
and the counts it reports match what the ESME did."""

from __future__ import annotations

import smpplib.client
import smpplib.consts as c
import smpplib.smpp

from omnirelay.testing.fastsmsc import FastSmsc, FastSmscProcess


class Esme:
    """An smpplib client that records answers and receipts, acknowledging each receipt."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client(
            "127.0.0.1", port, timeout=10, allow_unknown_opt_params=True
        )
        self.answers: list[tuple[int, str]] = []  # (sequence, message id)
        self.receipts: list[tuple[str, bytes]] = []  # (receipted_message_id, text)
        self.client.set_message_sent_handler(self._sent)
        self.client.set_message_received_handler(self._received)
        self.client.connect()

    def _sent(self, pdu: smpplib.smpp.Command) -> None:
        self.answers.append((pdu.sequence, pdu.message_id.decode()))

    def _received(self, pdu: smpplib.smpp.Command) -> None:
        # smpplib sends the deliver_sm_resp itself after this handler returns.
        self.receipts.append((pdu.receipted_message_id.decode(), pdu.short_message))

    def submit(self, text: str, *, receipt: bool = True) -> None:
        self.client.send_message(
            source_addr_ton=c.SMPP_TON_ALNUM,
            source_addr="BENCH",
            dest_addr_ton=c.SMPP_TON_INTL,
            dest_addr_npi=c.SMPP_NPI_ISDN,
            destination_addr="79161234567",
            short_message=text.encode(),
            registered_delivery=1 if receipt else 0,
        )

    def read_until(self, answers: int, receipts: int) -> None:
        for _ in range(10 * (answers + receipts) + 10):
            if len(self.answers) >= answers and len(self.receipts) >= receipts:
                return
            self.client.read_once()  # blocks up to the client's timeout
        raise AssertionError(f"{len(self.answers)} answers, {len(self.receipts)} receipts")

    def close(self) -> None:
        self.client.unbind()
        self.client.disconnect()


def test_every_submit_is_answered_with_an_id_and_its_receipt_comes_back() -> None:
    with FastSmsc() as smsc:
        esme = Esme(smsc.port)
        esme.client.bind_transceiver(system_id="bench", password="bench")
        for i in range(50):
            esme.submit(f"message {i}")
        esme.read_until(answers=50, receipts=50)
        esme.client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=esme.client))
        esme.client.read_once()  # the enquire_link_resp (not a message, no handler)
        ids = [message_id for _, message_id in esme.answers]
        assert len(set(ids)) == 50
        assert sorted(r for r, _ in esme.receipts) == sorted(ids)
        assert all(b"stat:DELIVRD" in text for _, text in esme.receipts)
        esme.close()
        stats = smsc.stats()
        assert (stats.submits, stats.unique, stats.binds) == (50, 50, 1)
        assert (stats.receipts_sent, stats.receipts_acked) == (50, 50)
        assert stats.first is not None and stats.last is not None
        assert stats.first <= stats.last


def test_a_receipt_is_sent_only_when_asked_and_duplicates_are_counted() -> None:
    with FastSmsc() as smsc:
        esme = Esme(smsc.port)
        esme.client.bind_transceiver(system_id="bench", password="bench")
        esme.submit("same text", receipt=False)
        esme.submit("same text", receipt=False)
        esme.submit("other text", receipt=True)
        esme.read_until(answers=3, receipts=1)
        esme.close()
        stats = smsc.stats()
        assert (stats.submits, stats.unique, stats.receipts_sent) == (3, 2, 1)
        smsc.reset()
        assert smsc.stats().submits == 0


def test_receipts_of_a_transmitter_go_to_the_receiver_of_the_same_account() -> None:
    with FastSmsc() as smsc:
        receiver = Esme(smsc.port)
        receiver.client.bind_receiver(system_id="bench", password="bench")
        transmitter = Esme(smsc.port)
        transmitter.client.bind_transmitter(system_id="bench", password="bench")
        for i in range(5):
            transmitter.submit(f"split {i}")
        transmitter.read_until(answers=5, receipts=0)
        receiver.read_until(answers=0, receipts=5)
        assert sorted(r for r, _ in receiver.receipts) == sorted(m for _, m in transmitter.answers)
        transmitter.close()
        receiver.close()


def test_in_its_own_process_it_reports_the_same_counts() -> None:
    with FastSmscProcess() as smsc:
        esme = Esme(smsc.port)
        esme.client.bind_transceiver(system_id="bench", password="bench")
        for i in range(20):
            esme.submit(f"message {i}")
        esme.read_until(answers=20, receipts=20)
        esme.close()
        stats = smsc.stats()
        assert (stats.submits, stats.unique, stats.receipts_acked) == (20, 20, 20)
        smsc.reset()
        assert smsc.stats().submits == 0
